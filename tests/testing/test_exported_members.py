import aipowertools.testing as testing


def test_public_api_is_exactly_this() -> None:
    assert testing.__all__ == [
        "ECHO",
        "Fault",
        "FaultKind",
        "ModelStats",
        "Reply",
        "RequestRecord",
        "SimModel",
        "SimRequest",
        "SimStats",
        "Simulator",
        "SimulatorStopError",
        "ToolCall",
        "__version__",
    ]
    assert testing.__all__ == sorted(testing.__all__)
    assert all(hasattr(testing, name) for name in testing.__all__)
