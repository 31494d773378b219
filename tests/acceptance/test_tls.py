"""TLS through hypercorn's certificate options: HTTPS, and mutual TLS with ``ca_certs``."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from mg.node import running_node
from mg.settings import from_mapping
from tests.support.processor import FakeProcessor


@pytest.fixture
def authority() -> trustme.CA:
    return trustme.CA()


def settings_with(
    tmp_path: Path, authority: trustme.CA, processor: FakeProcessor, **server: Any
) -> Any:
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in certificate.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    certificate.private_key_pem.write_to_path(str(keyfile))
    return from_mapping(
        {
            "server": {"certfile": str(certfile), "keyfile": str(keyfile), **server},
            "namespaces": {"test": {"processor": {"url": processor.url}}},
        },
        environ={},
    )


def client_context(
    authority: trustme.CA, certificate: trustme.LeafCert | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    if certificate is not None:
        certificate.configure_cert(context)
    return context


async def test_the_api_is_served_over_https(
    tmp_path: Path, authority: trustme.CA, processor: FakeProcessor, database_url: str
) -> None:
    settings = settings_with(tmp_path, authority, processor)
    async with running_node(settings, database_url, port=0) as node:
        url = node.url.replace("http://", "https://")
        async with httpx.AsyncClient(verify=client_context(authority), trust_env=False) as client:
            started = await client.post(f"{url}/v1/namespaces/test/machines/m1/start", json={})
            assert started.status_code == 201
        async with httpx.AsyncClient(trust_env=False) as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get(f"{url.replace('https://', 'http://')}/health/live")


async def test_mutual_tls_needs_a_client_certificate_from_the_configured_authority(
    tmp_path: Path, authority: trustme.CA, processor: FakeProcessor, database_url: str
) -> None:
    client_authority = trustme.CA()
    cas = tmp_path / "clients.pem"
    client_authority.cert_pem.write_to_path(str(cas))
    settings = settings_with(tmp_path, authority, processor, ca_certs=str(cas))
    async with running_node(settings, database_url, port=0) as node:
        url = node.url.replace("http://", "https://") + "/health/live"
        good = client_context(authority, client_authority.issue_cert("client-1"))
        async with httpx.AsyncClient(verify=good, trust_env=False) as client:
            assert (await client.get(url)).status_code == 200
        stranger = client_context(authority, trustme.CA().issue_cert("client-2"))
        for context in (client_context(authority), stranger):
            async with httpx.AsyncClient(verify=context, trust_env=False) as client:
                with pytest.raises(httpx.TransportError):
                    await client.get(url)
