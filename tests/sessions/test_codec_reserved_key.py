"""User values holding the codec's reserved key round-trip exactly; bad tagged data is typed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from aipowertools.sessions import SessionIntegrityError
from aipowertools.sessions._codec import Codec


@pytest.mark.parametrize(
    "value",
    [
        {"__aipt__": "bytes", "v": "aGk="},
        [{"__aipt__": "decimal", "v": "not a number"}, 1],
        {"a": {"__aipt__": 1, "v": [dt.date(2020, 1, 1)]}},
        {"__aipt__": "dict", "v": [["a", 1]]},
        {"when": dt.datetime(2020, 1, 2, 3, 4, 5)},
    ],
)
def test_reserved_key_round_trips(value: Any) -> None:
    codec = Codec()
    assert codec.decode(codec.encode(value)) == value


@pytest.mark.parametrize(
    "body", [b'{"__aipt__":"decimal","v":"x"}', b'{"__aipt__":"dict","v":[1]}']
)
def test_bad_tagged_data_is_an_integrity_error(body: bytes) -> None:
    codec = Codec()
    envelope = codec.encode(0)[:2] + body
    with pytest.raises(SessionIntegrityError):
        codec.decode(envelope)
