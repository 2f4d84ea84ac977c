"""The LSP client of the stdio tests: `kling-compose lsp` started in its own process, as an
editor starts it, driven by pytest-lsp's client."""

from __future__ import annotations

import sys

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient


@pytest_lsp.fixture(config=ClientServerConfig(
    server_command=[sys.executable, "-m", "kling_compose", "lsp", "--debounce-ms", "10"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), process_id=None))
    yield
    await lsp_client.shutdown_session()
