"""Gate settings that cannot work are refused when the service starts."""

from __future__ import annotations

import pytest

from registry.compose import build_services
from registry.core.settings import SettingsError
from tests.support import make_settings


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"classifier_url": "http://classifier.example/score"},
            "REGISTRY_CLASSIFIER_URL needs REGISTRY_CLASSIFIER_ALLOWED_HOSTS",
        ),
        (
            {
                "classifier_url": "http://classifier.example/score",
                "classifier_allowed_hosts": "127.0.0.1",
            },
            "classifier_host_not_allowed",
        ),
        (
            {"classifier_url": "ftp://127.0.0.1/", "classifier_allowed_hosts": "127.0.0.1"},
            "classifier_config_invalid",
        ),
        ({"image_fetch_allowed_hosts": "images.example, http://x/y"}, "REGISTRY_IMAGE_FETCH"),
        ({"gate_consent_timeout": 0}, "REGISTRY_GATE_*_TIMEOUT"),
    ],
)
async def test_unusable_gate_settings_are_refused_at_start(settings, tmp_path, overrides, message):
    with pytest.raises(SettingsError) as refused:
        await build_services(make_settings(settings.database_url, tmp_path, **overrides))
    assert message in str(refused.value)
