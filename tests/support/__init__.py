"""Helpers shared by the tests (no tests run from here except the fake Discord's own, ``test_fakediscord.py``).

- ``fakediscord``: a fake Discord HTTP + gateway server for the bot tests;
- ``bot``: a bot-only config, the bot against the fake, a supervised real worker, a fast stand-in worker;
- ``jobs``: waiting for jobs on the blocking and the async store;
- ``images``: small PNGs and artifacts read back as pictures;
- ``books``: counting a PDF's pages;
- ``stories``: a story pipeline on a scripted language model and fake pictures;
- ``clock``: a settable clock for the store.

Fixtures shared by several folders are in ``tests/conftest.py``."""
