from tests.factories import make_contact


def test_contact_list_answers(as_role):
    client, _user = as_role("sales")
    make_contact(first_name="Hélène", last_name="Dupont")
    from crm.extensions import db

    db.session.commit()
    response = client.get("/contacts")
    assert response.status_code == 200
    assert "Hélène Dupont" in response.text
