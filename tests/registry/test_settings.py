from __future__ import annotations

import pytest

from registry.core.settings import Settings, SettingsError, load


def test_defaults_and_derived_issuer():
    s = load({})
    assert s.host == "127.0.0.1"
    assert s.port == 8000
    assert s.embedded_database
    assert s.public_issuer == "http://127.0.0.1:8000"


def test_environment_values_are_typed():
    s = load(
        {
            "REGISTRY_PORT": "9001",
            "REGISTRY_LOG_JSON": "false",
            "REGISTRY_ISSUER": "https://registry.example/",
        }
    )
    assert s.port == 9001
    assert s.log_json is False
    assert s.public_issuer == "https://registry.example"


def test_toml_file_under_environment(tmp_path):
    f = tmp_path / "registry.toml"
    f.write_text('port = 9100\nhost = "::1"\n')
    s = load({"REGISTRY_CONFIG_FILE": str(f), "REGISTRY_PORT": "9200"})
    assert (s.host, s.port) == ("::1", 9200)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"REGISTRY_DATABASE_URL": "mysql://x@y/z"}, "postgresql://"),
        ({"REGISTRY_DATABASE_URL": "postgresql:///nohost"}, "names no host"),
        ({"REGISTRY_PORT": "eighty"}, "REGISTRY_PORT"),
        ({"REGISTRY_PORT": "70000"}, "REGISTRY_PORT"),
        ({"REGISTRY_ISSUER": "registry.example"}, "REGISTRY_ISSUER"),
        ({"REGISTRY_TRUST_ANCHORS": "/nonexistent/anchors.pem"}, "REGISTRY_TRUST_ANCHORS"),
        ({"REGISTRY_C2PA_CERT_CHAIN": __file__}, "go together"),
        ({"REGISTRY_TOKEN_LEEWAY": "61"}, "REGISTRY_TOKEN_LEEWAY must be 0..60"),
        ({"REGISTRY_TOKEN_LEEWAY": "-1"}, "REGISTRY_TOKEN_LEEWAY must be 0..60"),
        ({"REGISTRY_TOKEN_LEEWAY": "soon"}, "REGISTRY_TOKEN_LEEWAY"),
    ],
)
def test_bad_settings_name_the_setting(env, needle):
    with pytest.raises(SettingsError, match=needle):
        load(env)


def test_token_leeway_is_the_offline_verifiers_default_and_bounded_alike():
    from verifier.clock import DEFAULT_LEEWAY_SECONDS, MAX_LEEWAY_SECONDS

    assert load({}).token_leeway == DEFAULT_LEEWAY_SECONDS == 5
    assert load({"REGISTRY_TOKEN_LEEWAY": "0"}).token_leeway == 0
    assert load({"REGISTRY_TOKEN_LEEWAY": str(MAX_LEEWAY_SECONDS)}).token_leeway == 60
    with pytest.raises(SettingsError):
        load({"REGISTRY_TOKEN_LEEWAY": str(MAX_LEEWAY_SECONDS + 1)})


def test_unknown_key_in_config_file(tmp_path):
    f = tmp_path / "registry.toml"
    f.write_text("prot = 1\n")
    with pytest.raises(SettingsError, match="prot"):
        load({"REGISTRY_CONFIG_FILE": str(f)})


def test_redacted_hides_secrets():
    s = Settings(
        database_url="postgresql://app:hunter2@db:5432/reg",
        master_key="k" * 43,
        bootstrap_admin_key="rk_" + "a" * 43,
    )
    text = str(s.redacted())
    assert "hunter2" not in text
    assert "k" * 43 not in text
    assert "a" * 43 not in text


def test_every_setting_is_documented_in_the_readme():
    import msgspec

    from tests.support import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [
        f"REGISTRY_{f.name.upper()}"
        for f in msgspec.structs.fields(Settings)
        if f"REGISTRY_{f.name.upper()}`" not in readme
    ]
    assert missing == []
