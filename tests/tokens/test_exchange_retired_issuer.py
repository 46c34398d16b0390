"""An exchange that passed the issuer lookup while the issuer is disabled commits no token."""

from __future__ import annotations

from typing import Any

import pytest

from exchange import pipeline
from issuers.models import Issuer
from tests.tokens.conftest import AUDIENCE, exchange_body
from tokens.models import AccessToken, ExchangeEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("trusted")]


def test_disabled_between_lookup_and_record_writes_no_token(
    api_client, local_issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_mint = pipeline.mint

    def mint_then_disable(*args: Any, **kwargs: Any) -> Any:
        minted = real_mint(*args, **kwargs)
        Issuer.objects.update(enabled=False)  # another request disables it meanwhile
        return minted

    monkeypatch.setattr(pipeline, "mint", mint_then_disable)
    response = api_client.post(
        "/api/oauth/token", exchange_body(local_issuer.mint(audience=AUDIENCE)), format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["reason"] == "untrusted_token", response.json()
    assert not AccessToken.objects.exists()
    event = ExchangeEvent.objects.get()
    assert event.decision == "deny" and event.reason == "issuer_disabled"
