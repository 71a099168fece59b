def test_it_boots(client):
    assert client.get("/").status_code == 302
