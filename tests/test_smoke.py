from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.factories import login, make_collective, make_user


def test_home_page_answers(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "Write to government, together" in response.get_data(as_text=True)


def test_owner_sees_dashboard(client: FlaskClient, session: Session, app) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner, name="Smoke Test Collective")
    login(client, owner)
    response = client.get(f"/app/{collective.slug}/")
    assert response.status_code == 200
    assert "Smoke Test Collective" in response.get_data(as_text=True)
