"""The authenticator's configuration checks and ID token verification (no hub needed)."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from bubble_manager.auth.authenticator import AccessRefused, BubbleOIDCAuthenticator
from bubble_manager.auth.mapping import ClaimError

GROUP_MAP = {"eds-researchers": "researchers", "eds-stewards": "stewards", "eds-admins": "admins"}
ISSUER = "https://idp.example-hospital.fr/realms/eds"


def make(**settings) -> BubbleOIDCAuthenticator:
    defaults = {"group_map": GROUP_MAP, "client_id": "hub", "token_url": "https://idp/token",
                "jwks_url": "https://idp/jwks"}
    return BubbleOIDCAuthenticator(**{**defaults, **settings})


@pytest.mark.parametrize("settings, problem", [
    ({"group_map": {}}, "group map is empty"),
    ({"group_map": {"eds-ops": "admin"}}, "only researchers, stewards, admins"),
    ({"admin_groups": {"admins"}}, "admin_users and admin_groups must stay empty"),
    ({"admin_users": {"root"}}, "admin_users and admin_groups must stay empty"),
    ({"allowed_users": {"alice"}}, "by group only"),
    ({"allow_all": True}, "by group only"),
    ({"enable_auth_state": False}, "enable_auth_state"),
    ({"manage_groups": False}, "manage_groups"),
    ({"allowed_groups": {"researchers", "everyone"}}, "allowed_groups may only name"),
])
def test_unsafe_configurations_are_refused_at_start(settings, problem):
    with pytest.raises(ValueError, match=problem):
        make(**settings)


def test_safe_defaults():
    authenticator = make()
    assert authenticator.manage_groups and authenticator.enable_auth_state
    assert authenticator.allowed_groups == {"researchers", "stewards", "admins"}
    assert not authenticator.admin_groups and not authenticator.admin_users
    assert authenticator.mfa_required and "otp" in authenticator.mfa_amr_values and "pwd" not in authenticator.mfa_amr_values
    assert authenticator.auth_refresh_strict
    assert "offline_access" in authenticator.scope


def test_client_secret_comes_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n")
    assert make(client_secret_file=str(secret)).client_secret == "s3cret-value"


def test_an_unreachable_issuer_is_a_clear_start_up_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ValueError, match=r"cannot read the OIDC discovery document http://127\.0\.0\.1:\d+/"):
        make(issuer=f"http://127.0.0.1:{port}", token_url="", jwks_url="")


def test_idp_logout_url():
    authenticator = make(end_session_url="https://idp/logout", post_logout_redirect_url="https://hub/hub/login")
    url = authenticator.idp_logout_url("the.id.token")
    assert url.startswith("https://idp/logout?") and "id_token_hint=the.id.token" in url
    assert "post_logout_redirect_uri=https%3A%2F%2Fhub%2Fhub%2Flogin" in url
    assert make(end_session_url="https://idp/logout", idp_logout=False).idp_logout_url("x") == ""
    assert make().idp_logout_url("x") == ""


# --- ID tokens --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keys():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(key, kid="k1") -> dict:
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}


def id_token(key, kid="k1", **overrides) -> str:
    now = dt.datetime.now(dt.timezone.utc)
    claims = {"iss": ISSUER, "aud": "hub", "sub": "alice", "iat": now, "exp": now + dt.timedelta(minutes=5),
              "amr": ["pwd", "otp"], **overrides}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def verifier(keys) -> BubbleOIDCAuthenticator:
    authenticator = make(issuer="", token_url="https://idp/token")
    authenticator.issuer = ISSUER            # set after construction: no discovery in a unit test
    authenticator._jwks = jwks_of(keys[0])
    return authenticator


def claims_of(authenticator, token):
    return asyncio.run(authenticator.id_token_claims(token))


def test_a_valid_id_token_gives_its_claims(keys):
    assert claims_of(verifier(keys), id_token(keys[0]))["amr"] == ["pwd", "otp"]


@pytest.mark.parametrize("change", ["other-key", "audience", "issuer", "expired", "no-exp", "alg-none"])
def test_id_tokens_that_cannot_be_trusted_are_refused(keys, change):
    authenticator = verifier(keys)
    authenticator.jwks_url = ""              # the cached keys are all it may use (a refetch would fail)
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    token = {
        "other-key": lambda: id_token(keys[1]),
        "audience": lambda: id_token(keys[0], aud="another-client"),
        "issuer": lambda: id_token(keys[0], iss="https://evil.example"),
        "expired": lambda: id_token(keys[0], iat=past, exp=past + dt.timedelta(minutes=5)),
        "no-exp": lambda: id_token(keys[0], exp=None),
        "alg-none": lambda: jwt.encode({"iss": ISSUER, "aud": "hub", "sub": "alice", "amr": ["otp"]}, None,
                                       algorithm="none"),
    }[change]()
    authenticator._jwks = jwks_of(keys[0])
    with pytest.raises(ClaimError) as refused:
        claims_of(authenticator, token)
    assert refused.value.code == "id-token-invalid"


def test_a_missing_id_token_is_refused(keys):
    with pytest.raises(ClaimError) as refused:
        claims_of(verifier(keys), None)
    assert refused.value.code == "id-token-missing"


def test_refusal_page_escapes_and_explains():
    error = AccessRefused("no-second-factor", "your sign-in <b>did not</b> use a second factor", "https://idp/end?a=1&b=2")
    assert error.status_code == 403 and error.reason == "Sign-in refused"
    assert "&lt;b&gt;did not&lt;/b&gt;" in error.jupyterhub_html_message
    assert 'href="https://idp/end?a=1&amp;b=2"' in error.jupyterhub_html_message
    assert "Reference: no-second-factor" in error.jupyterhub_html_message


# --- hub_config/oidc.py ------------------------------------------------------------------------

def load_hub_config(monkeypatch, environment: dict[str, str]):
    from pathlib import Path

    from traitlets.config import Config

    for name in ("BUBBLE_OIDC_ISSUER", "BUBBLE_OIDC_CLIENT_ID", "BUBBLE_OIDC_GROUP_MAP", "JUPYTERHUB_CRYPT_KEY",
                 "BUBBLE_OIDC_CLIENT_SECRET_FILE", "BUBBLE_OIDC_CLIENT_SECRET", "BUBBLE_OIDC_MFA_ACR", "BUBBLE_HUB_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    config = Config()
    source = (Path(__file__).resolve().parents[2] / "hub_config" / "oidc.py").read_text()
    exec(compile(source, "hub_config/oidc.py", "exec"), {"get_config": lambda: config})  # noqa: S102
    return config


def test_hub_config_names_what_is_missing(monkeypatch):
    with pytest.raises(SystemExit, match="set BUBBLE_OIDC_ISSUER, BUBBLE_OIDC_CLIENT_ID, BUBBLE_OIDC_GROUP_MAP, "
                                         "JUPYTERHUB_CRYPT_KEY"):
        load_hub_config(monkeypatch, {})


def test_hub_config_needs_a_client_secret_from_a_file_or_the_environment(monkeypatch, tmp_path):
    needed = {"BUBBLE_OIDC_ISSUER": ISSUER, "BUBBLE_OIDC_CLIENT_ID": "hub", "JUPYTERHUB_CRYPT_KEY": "00" * 32,
              "BUBBLE_OIDC_GROUP_MAP": '{"eds-researchers": "researchers"}', "BUBBLE_MANAGER_HOME": str(tmp_path)}
    with pytest.raises(SystemExit, match="set BUBBLE_OIDC_CLIENT_SECRET_FILE .* or BUBBLE_OIDC_CLIENT_SECRET"):
        load_hub_config(monkeypatch, needed)
    from_file = load_hub_config(monkeypatch, {**needed, "BUBBLE_OIDC_CLIENT_SECRET_FILE": "/etc/bm/secret"})
    assert from_file.BubbleOIDCAuthenticator.client_secret_file == "/etc/bm/secret"
    assert "client_secret" not in from_file.BubbleOIDCAuthenticator
    from_environment = load_hub_config(monkeypatch, {**needed, "BUBBLE_OIDC_CLIENT_SECRET": "s3cret"})
    assert from_environment.BubbleOIDCAuthenticator.client_secret == "s3cret"


def test_hub_config(monkeypatch, tmp_path):
    config = load_hub_config(monkeypatch, {
        "BUBBLE_OIDC_ISSUER": ISSUER, "BUBBLE_OIDC_CLIENT_ID": "hub", "JUPYTERHUB_CRYPT_KEY": "00" * 32,
        "BUBBLE_OIDC_CLIENT_SECRET": "s3cret",
        "BUBBLE_OIDC_GROUP_MAP": '{"eds-researchers": "researchers"}', "BUBBLE_OIDC_MFA_ACR": "gold, eidas2",
        "BUBBLE_HUB_URL": "https://hub.example/", "BUBBLE_MANAGER_HOME": str(tmp_path)})
    assert config.JupyterHub.authenticator_class.endswith("BubbleOIDCAuthenticator")
    oidc = config.BubbleOIDCAuthenticator
    assert oidc.oauth_callback_url == "https://hub.example/hub/oauth_callback"
    assert oidc.group_map == {"eds-researchers": "researchers"} and oidc.mfa_acr_values == {"gold", "eidas2"}
    assert config.Authenticator.admin_users == set() and config.JupyterHub.cookie_max_age_days < 1
