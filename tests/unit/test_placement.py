"""Which database holds each namespace and sink, and the configurations that cannot be."""

import pytest

from mg.settings import SettingsError, from_mapping

FAR = "postgresql://mg:secret@db2.internal:5433/mg"


def namespaces(**databases: tuple[str | None, list[str]]) -> dict[str, object]:
    tables = {}
    for name, (url, sinks) in databases.items():
        table: dict[str, object] = {"processor": {"url": "http://p"}, "sinks": sinks}
        if url is not None:
            table["database"] = {"url": url}
        tables[name] = table
    return tables


def test_namespaces_and_their_sinks_are_placed_in_their_database() -> None:
    settings = from_mapping(
        {
            "sinks": {"a": {}, "b": {}, "idle": {}},
            "namespaces": namespaces(near=(None, ["a"]), far=(FAR, ["b"]), also=(FAR, [])),
        },
        environ={},
    )
    default, far = settings.placements()
    assert (default.name, default.url, default.namespaces) == ("default", None, ("near",))
    assert default.sinks == ("a", "idle")  # a sink no namespace feeds stays in the default
    assert (far.name, far.url, far.namespaces, far.sinks) == (
        "db2.internal:5433/mg",
        FAR,
        ("far", "also"),
        ("b",),
    )
    assert "secret" not in repr(settings.placements())


def test_a_namespace_on_the_default_url_is_in_the_default_database() -> None:
    settings = from_mapping(
        {"namespaces": namespaces(near=(None, []), same=(FAR, []))},
        environ={"MG_DATABASE_URL": FAR},
    )
    assert [p.namespaces for p in settings.placements()] == [("near", "same")]


def test_a_sink_fed_from_two_databases_is_refused_naming_both() -> None:
    data = {"sinks": {"main": {}}, "namespaces": namespaces(a=(None, ["main"]), b=(FAR, ["main"]))}
    with pytest.raises(SettingsError) as refused:
        from_mapping(data, environ={})
    message = str(refused.value)
    assert "'main'" in message
    assert "'a' (database default)" in message
    assert "'b' (database db2.internal:5433/mg)" in message
    assert "secret" not in message
