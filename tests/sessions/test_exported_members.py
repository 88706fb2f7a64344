import aipowertools.sessions as sessions
import aipowertools.sessions.langchain as lc
import aipowertools.sessions.langgraph as lg
import aipowertools.sessions.llama_index as li


def test_public_api_is_locked() -> None:
    assert sessions.__all__ == [
        "AESGCMEncryption",
        "Codec",
        "Encryption",
        "FernetEncryption",
        "MemoryBackend",
        "Session",
        "SessionBackend",
        "SessionIntegrityError",
        "SessionLimitError",
        "SessionLockError",
        "TypeRegistry",
        "Versioned",
        "__version__",
        "default_store_url",
        "open_store",
        "register_type",
    ]
    assert lc.__all__ == ["SessionChatMessageHistory", "SessionKVStore", "register_langchain_types"]
    assert lg.__all__ == ["CheckpointSaver", "Store"]
    assert li.__all__ == ["SessionChatStore", "SessionDBChatStore", "register_llama_index_types"]
    for name in sessions.__all__:
        assert hasattr(sessions, name)
