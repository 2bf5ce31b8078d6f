"""The fake Discord against the unmodified discord.py client: connection, commands, uploads, faults.

A tiny in-test bot exercises what the real bot will rely on: deferring, followups with files and buttons,
button handlers, threads posted to by channel ID, and discord.py's own retry behaviour on 429 and 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sys
import textwrap
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import discord
import pytest
from discord.ext import commands

from tests.support.fakediscord import FakeDiscord, SnowflakeFactory, Upload, point_discord_at


def tiny_png(width: int = 2, height: int = 1) -> bytes:
    """A valid RGB PNG, built by hand so the test needs nothing but the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    rows = b"".join(b"\x00" + bytes([200, 30, 90]) * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = tiny_png(3, 2)


class EchoView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Again", custom_id="echo:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content=f"pressed by {interaction.user.name}", view=None)


class SettingsModal(discord.ui.Modal, title="Your defaults"):
    negative = discord.ui.TextInput(label="Negative prompt", custom_id="settings:negative")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"saved negative={self.negative.value}", ephemeral=True)


class FilesModal(discord.ui.Modal, title="Send files"):
    """Two upload fields: one required (1–2 files), one optional (up to 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.main = discord.ui.FileUpload(custom_id="files:main", min_values=1, max_values=2)
        self.extra = discord.ui.FileUpload(custom_id="files:extra", required=False, min_values=1, max_values=3)
        self.add_item(discord.ui.Label(text="Main files", component=self.main))
        self.add_item(discord.ui.Label(text="More files", component=self.extra))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        lines = []
        for upload in (self.main, self.extra):
            for attachment in upload.values:
                data = await attachment.read()
                lines.append(f"{upload.custom_id} {attachment.filename} {attachment.content_type} {len(data)}")
        await interaction.response.send_message("\n".join(lines), ephemeral=True)


class KeepView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Keep", custom_id="keep")
    async def keep(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()  # type 6: nothing visible yet
        await interaction.edit_original_response(content="kept")  # edits the message the button is on


class Upscale(discord.ui.DynamicItem[discord.ui.Button], template=r"sl:u:(?P<job>[0-9]+):(?P<index>[1-4])"):
    """A restart-proof button: everything it needs is in its custom ID."""

    def __init__(self, job: int, index: int) -> None:
        super().__init__(discord.ui.Button(label=f"U{index}", custom_id=f"sl:u:{job}:{index}"))
        self.job, self.index = job, index

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match) -> Upscale:
        return cls(int(match["job"]), int(match["index"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"upscaling image {self.index} of job {self.job}")


def make_bot() -> commands.Bot:
    bot = commands.Bot(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05)

    @bot.tree.command()
    async def echo(interaction: discord.Interaction, text: str) -> None:
        """Repeat the text with a picture and a button."""
        await interaction.response.defer()
        if len(PNG) > interaction.filesize_limit:
            await interaction.followup.send(f"{text} (picture left out: too large)")
            return
        await interaction.followup.send(text, file=discord.File(io.BytesIO(PNG), "echo.png"), view=EchoView())

    @bot.tree.command()
    async def thread(interaction: discord.Interaction, title: str) -> None:
        """Open a thread and post pages into it by channel ID."""
        await interaction.response.defer(ephemeral=True)
        try:
            created = await interaction.channel.create_thread(name=title, type=discord.ChannelType.public_thread)
        except discord.HTTPException as exc:
            await interaction.followup.send(f"threads not allowed here ({exc.code})", ephemeral=True)
            return
        pages = bot.get_partial_messageable(created.id)
        await pages.send("page 1")
        await pages.send("page 2", file=discord.File(io.BytesIO(PNG), "page2.png"))
        await interaction.followup.send(f"opened {created.id}", ephemeral=True)

    @bot.tree.command()
    async def checksum(interaction: discord.Interaction, image: discord.Attachment) -> None:
        """Hash an uploaded file."""
        data = await image.read()
        await interaction.response.send_message(f"{image.filename} {len(data)} {hashlib.sha256(data).hexdigest()}")

    @bot.tree.command()
    async def files(interaction: discord.Interaction) -> None:
        """Open a form with file upload fields."""
        await interaction.response.send_modal(FilesModal())

    @bot.tree.command()
    async def slow(interaction: discord.Interaction) -> None:
        """Answers too late."""
        await asyncio.sleep(0.3)
        try:
            await interaction.response.send_message("late")
        except discord.NotFound as exc:
            bot.late_error_code = exc.code  # type: ignore[attr-defined]

    @bot.tree.command()
    async def settings(interaction: discord.Interaction) -> None:
        """Open the settings form."""
        await interaction.response.send_modal(SettingsModal())

    async def setup_hook() -> None:
        bot.add_view(EchoView())
        bot.add_view(KeepView())
        bot.add_dynamic_items(Upscale)
        await bot.tree.sync()

    bot.setup_hook = setup_hook  # type: ignore[method-assign]
    return bot


@asynccontextmanager
async def running_bot(fake: FakeDiscord, token: str | None = None) -> AsyncIterator[commands.Bot]:
    bot = make_bot()
    runner = asyncio.create_task(bot.start(token or fake.token))
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({runner, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # re-raise the login/connection error
        assert ready in done, "on_ready did not fire within 10 s"
        yield bot
    finally:
        ready.cancel()
        await bot.close()
        await asyncio.wait_for(asyncio.gather(runner, return_exceptions=True), 5)


# ---------------------------------------------------------------------------------------------- connection
async def test_client_connects_and_sees_the_default_guild(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        assert fake.connected
        assert bot.user.id == fake.bot_user.id and bot.user.bot
        guild = bot.get_guild(fake.guild.id)
        assert guild is not None and guild.owner_id == fake.owner.id
        assert guild.get_channel(fake.text_channel.id).is_nsfw() is False
        assert guild.get_channel(fake.nsfw_channel.id).is_nsfw() is True
        assert guild.me is not None
        await fake.wait_for(lambda: fake.gateway.heartbeats >= 1)  # discord.py beats once right after HELLO
        assert bot.latency < 1.0  # the heartbeat was ACKed
        assert [c.path for c in fake.calls[:2]] == ["/users/@me", "/oauth2/applications/@me"]
        identify = next(d for op, d in fake.gateway.received if op == 2)
        assert identify["token"] == "<redacted>"
    assert fake.token not in repr(fake) + repr(fake.calls)


async def test_tree_sync_registers_commands(fake: FakeDiscord) -> None:
    async with running_bot(fake):
        put = fake.calls.filter("PUT", "/applications/{application_id}/commands")
        assert len(put) == 1 and put[0].status == 200
        assert {c["name"] for c in put[0].response} == {"echo", "thread", "checksum", "slow", "settings", "files"}
        assert all(c["id"] and c["version"] for c in put[0].response)
        echo = fake.command("echo")
        assert echo is not None and echo["options"][0]["name"] == "text" and echo["options"][0]["type"] == 3
        with pytest.raises(LookupError):
            await fake.invoke_command("imagine", {"prompt": "a cat"})


async def test_gateway_resumes_after_reconnect_request(fake: FakeDiscord) -> None:
    async with running_bot(fake):
        session = fake.gateway.live_sessions[0]
        fake.request_reconnect()
        await fake.wait_for(lambda: session.resumes == 1 and fake.connected, timeout=5)
        assert fake.gateway.identify_count == 1
        handle = await fake.invoke_command("echo", {"text": "still here"})
        assert (await handle.wait_ack()).type == 5


# ---------------------------------------------------------------------------------------------- interactions
async def test_echo_is_deferred_then_followup_uploads_the_exact_bytes(fake: FakeDiscord) -> None:
    async with running_bot(fake):
        handle = await fake.invoke_command("echo", {"text": "hello"}, user=fake.member)
        ack = await handle.wait_ack(timeout=3)
        assert ack.type == 5 and 0 <= ack.elapsed_ms < 3000
        [message] = await handle.wait_followups(1)

        [post] = fake.calls.filter("POST", "/webhooks/{application_id}/{token}")
        assert post.status == 200 and post.query["wait"] == "1"
        assert post.json["content"] == "hello"
        [upload] = post.files
        assert (upload.field_name, upload.filename) == ("files[0]", "echo.png")
        assert upload.content_type == "application/octet-stream"
        assert upload.data == PNG

        assert message.content == "hello" and not message.loading
        assert message.id == handle.original_response().id  # the followup filled the "thinking…" message
        [attachment] = message.attachments
        assert (attachment.data, attachment.content_type) == (PNG, "image/png")
        assert (attachment.width, attachment.height) == (3, 2)
        assert message.custom_ids() == ["echo:again"]
        async with aiohttp.ClientSession() as http:
            async with http.get(attachment.url) as response:
                assert await response.read() == PNG


async def test_button_click_reaches_the_handler_and_the_edit_is_visible(fake: FakeDiscord) -> None:
    async with running_bot(fake):
        handle = await fake.invoke_command("echo", {"text": "press me"})
        [message] = await handle.wait_followups(1)
        click = await fake.click_button(message, "echo:again", user=fake.manager)
        assert (await click.wait_ack()).type == 7
        [current] = [m for m in fake.messages_in(fake.text_channel) if m.id == message.id]
        assert current.content == "pressed by max-manager"
        assert current.components == [] and current.edits[-1]["content"] == "press me"
        with pytest.raises(LookupError):
            await fake.click_button(message, "echo:again")  # the button is gone now


async def test_buttons_keep_working_after_the_bot_restarts(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        view = discord.ui.View(timeout=None)
        for index in range(1, 5):
            view.add_item(Upscale(job=7, index=index))
        grid = await bot.get_partial_messageable(fake.text_channel.id).send("grid", view=view)
    await fake.wait_for(lambda: not fake.connected, timeout=2)
    async with running_bot(fake):  # a fresh process would look exactly like this to Discord
        click = await fake.click_button(grid.id, "sl:u:7:2")
        assert (await click.wait_ack()).type == 4
        assert click.original_response().content == "upscaling image 2 of job 7"
        assert fake.gateway.identify_count == 2


async def test_commands_work_in_direct_messages(fake: FakeDiscord) -> None:
    async with running_bot(fake):
        handle = await fake.invoke_command("echo", {"text": "psst"}, channel=fake.dm_channel)
        assert "user" in handle.payload and "member" not in handle.payload
        [message] = await handle.wait_followups(1)
        assert message.channel_id == fake.dm_channel.id and message.guild_id is None
        assert message.attachments[0].data == PNG


async def test_modal_and_deferred_update(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        handle = await fake.invoke_command("settings")
        assert (await handle.wait_ack()).type == 9 and handle.modal["title"] == "Your defaults"
        submitted = await handle.submit_modal({"settings:negative": "blurry"})
        assert (await submitted.wait_ack()).type == 4
        assert submitted.original_response().content == "saved negative=blurry"
        assert submitted.original_response().ephemeral

        message = await bot.get_partial_messageable(fake.text_channel.id).send("keep?", view=KeepView())
        click = await fake.click_button(message.id, "keep")
        assert (await click.wait_ack()).type == 6
        await fake.wait_for(lambda: fake.message(message.id).content == "kept", timeout=3)


async def test_modal_file_uploads_arrive_as_attachments(fake: FakeDiscord) -> None:
    async with running_bot(fake):
        handle = await fake.invoke_command("files")
        assert (await handle.wait_ack()).type == 9
        [main, extra] = handle.modal["components"]
        assert main["type"] == 18 and main["component"]["type"] == 19
        assert (main["component"]["min_values"], main["component"]["max_values"]) == (1, 2)
        assert extra["component"]["required"] is False

        with pytest.raises(ValueError, match="at most 2"):
            await handle.submit_modal({"files:main": [PNG, PNG, PNG]})
        with pytest.raises(ValueError, match="at least 1"):
            await handle.submit_modal({"files:extra": [PNG]})  # the required field left empty

        uploads = {"files:main": [Upload("a.png", PNG), ("b.txt", b"hello")], "files:extra": [PNG]}
        submitted = await handle.submit_modal(uploads)
        assert (await submitted.wait_ack()).type == 4
        resolved = submitted.payload["data"]["resolved"]["attachments"]
        assert len(resolved) == 3 and all(a["url"] for a in resolved.values())
        assert submitted.original_response().content.splitlines() == [
            f"files:main a.png image/png {len(PNG)}",
            "files:main b.txt text/plain; charset=utf-8 5",
            f"files:extra upload.png image/png {len(PNG)}",
        ]


async def test_attachment_option_is_resolved_and_downloadable(fake: FakeDiscord) -> None:
    async with running_bot(fake):
        handle = await fake.invoke_command("checksum", attachments=[Upload("cat.png", PNG)])
        assert (await handle.wait_ack()).type == 4
        reply = handle.original_response()
        assert reply.content == f"cat.png {len(PNG)} {hashlib.sha256(PNG).hexdigest()}"


async def test_interaction_size_limit_reaches_the_bot(fake: FakeDiscord) -> None:
    async with running_bot(fake):
        handle = await fake.invoke_command("echo", {"text": "big"}, attachment_size_limit=len(PNG) - 1)
        [message] = await handle.wait_followups(1)
        assert message.content == "big (picture left out: too large)" and message.attachments == []


async def test_late_acknowledgement_is_refused_like_discord() -> None:
    async with FakeDiscord(ack_deadline=0.1) as fake, running_bot(fake) as bot:
        handle = await fake.invoke_command("slow")
        await fake.wait_for(lambda: getattr(bot, "late_error_code", None), timeout=3)
        assert bot.late_error_code == 10062 and handle.ack is None


# ---------------------------------------------------------------------------------------------- threads
async def test_thread_is_created_and_pages_are_posted_by_channel_id(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        handle = await fake.invoke_command("thread", {"title": "The Brave Cat"})
        [done] = await handle.wait_followups(1)
        [thread] = fake.threads_of(fake.text_channel)
        assert done.content == f"opened {thread.id}" and done.ephemeral
        assert thread.name == "The Brave Cat" and thread.owner_id == fake.bot_user.id
        pages = fake.messages_in(thread)
        assert [m.content for m in pages] == ["page 1", "page 2"]
        assert pages[1].attachments[0].data == PNG
        assert bot.get_channel(thread.id) is not None  # THREAD_CREATE reached the client cache

        refused = await fake.invoke_command("thread", {"title": "Nope"}, channel=fake.no_threads_channel)
        [answer] = await refused.wait_followups(1)
        assert answer.content == "threads not allowed here (50013)"
        assert fake.threads_of(fake.no_threads_channel) == []


async def test_thread_from_message_history_reactions_and_upload_limit(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        channel = bot.get_channel(fake.text_channel.id)
        first = await channel.send("one")
        second = await channel.send("two")
        thread = await second.create_thread(name="from a message")
        assert thread.id == second.id and fake.message(second.id).thread_id == thread.id
        await second.add_reaction("🔁")
        assert fake.message(second.id).reactions == {"🔁": {fake.bot_user.id}}
        assert [m.id async for m in channel.history(limit=10)] == [second.id, first.id]
        assert [m.id async for m in channel.history(limit=10, before=second)] == [first.id]
        async with channel.typing():
            pass

        with pytest.raises(discord.HTTPException) as caught:
            await channel.send("x" * 2001)
        assert (caught.value.status, caught.value.code) == (400, 50035)

        fake.set_attachment_size_limit(len(PNG) - 1)
        with pytest.raises(discord.HTTPException) as caught:
            await channel.send(file=discord.File(io.BytesIO(PNG), "big.png"))
        assert (caught.value.status, caught.value.code) == (413, 40005)


# ---------------------------------------------------------------------------------------------- faults
async def test_injected_429_is_retried_and_the_message_arrives_once(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        fake.fail_next("POST", "/channels/*/messages", status=429, retry_after=0.05)
        await bot.get_partial_messageable(fake.text_channel.id).send("after a rate limit")
        posts = fake.calls.filter("POST", "/channels/{channel_id}/messages")
        assert [(c.status, c.injected) for c in posts] == [(429, True), (200, False)]
        assert posts[0].response["retry_after"] == 0.05
        assert [m.content for m in fake.messages_in(fake.text_channel)] == ["after a rate limit"]


async def test_injected_500_is_retried_and_the_message_arrives_once(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        fake.fail_next("POST", "/channels/{channel_id}/messages", status=500)
        await bot.get_partial_messageable(fake.text_channel.id).send("after a server error")
        assert [c.status for c in fake.calls.filter("POST", "/channels/*/messages")] == [500, 200]
        assert [m.content for m in fake.messages_in(fake.text_channel)] == ["after a server error"]


async def test_deleted_message_answers_unknown_message(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        status = await bot.get_partial_messageable(fake.text_channel.id).send("queued — position 1")
        fake.delete_message(fake.text_channel, status.id)
        with pytest.raises(discord.NotFound) as caught:
            await status.edit(content="running 10%")
        assert caught.value.code == 10008
        assert fake.messages_in(fake.text_channel) == []
        async with aiohttp.ClientSession() as http:
            url = f"{fake.url}/api/v10/channels/{fake.text_channel.id}/messages/{status.id}"
            async with http.get(url, headers={"Authorization": f"Bot {fake.token}"}) as response:
                assert response.status == 404 and response.headers["Content-Type"] == "application/json"
                assert json.loads(await response.read()) == {"code": 10008, "message": "Unknown Message"}


async def test_wrong_token_is_refused_on_rest_and_gateway(fake: FakeDiscord) -> None:
    with pytest.raises(discord.LoginFailure):
        async with running_bot(fake, token="not-the-token"):
            pass
    assert fake.calls[-1].status == 401 and not fake.connected
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(fake.ws_url + "?v=10&encoding=json") as ws:
            hello = await ws.receive_json(timeout=5)
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] > 0
            await ws.send_json({"op": 2, "d": {"token": "not-the-token", "intents": 513, "properties": {}}})
            closing = await ws.receive(timeout=5)
            assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4004


def test_snowflakes_are_time_based_and_increasing() -> None:
    ids = SnowflakeFactory()
    minted = [ids.next() for _ in range(1000)]
    assert minted == sorted(set(minted))
    age = discord.utils.utcnow() - discord.utils.snowflake_time(minted[-1])
    assert abs(age.total_seconds()) < 5


async def test_error_answers_have_discords_shape(fake: FakeDiscord) -> None:
    api = f"{fake.url}/api/v10"
    auth = {"Authorization": f"Bot {fake.token}"}
    cases = [
        ("GET", "/users/@me", {}, None, 401, 0),
        ("POST", f"/channels/{fake.dm_channel.id}/threads", auth, {"name": "x"}, 400, 50024),
        ("POST", f"/channels/{fake.no_threads_channel.id}/threads", auth, {"name": "x"}, 403, 50013),
        ("POST", f"/channels/{fake.text_channel.id}/messages", auth, {"content": ""}, 400, 50006),
        ("GET", f"/channels/{fake.text_channel.id}/messages/1", auth, None, 404, 10008),
        ("GET", "/channels/1", auth, None, 404, 10003),
        ("POST", f"/webhooks/{fake.application_id}/not-a-token", {}, {"content": "hi"}, 401, 50027),
        ("POST", "/interactions/1/not-a-token/callback", {}, {"type": 5}, 404, 10062),
        ("GET", "/no/such/route", auth, None, 404, 0),
    ]
    async with aiohttp.ClientSession() as http:
        for method, path, headers, body, status, code in cases:
            async with http.request(method, api + path, headers=headers, json=body) as response:
                data = await response.json(content_type="application/json")
                assert (response.status, data["code"]) == (status, code), (method, path, data)
    assert [c.path for c in fake.unhandled] == ["/no/such/route"]


async def test_point_discord_at_restores_the_real_urls() -> None:
    def bases() -> tuple:
        return discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY, discord.asset.Asset.BASE

    before = bases()
    with point_discord_at("http://127.0.0.1:9"):
        assert discord.http.Route.BASE == "http://127.0.0.1:9/api/v10"
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/"
    assert bases() == before
    with pytest.raises(ValueError):
        with point_discord_at("https://discord.com"):
            pass


# ---------------------------------------------------------------------------------------------- child process
BOT_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import discord

    if not discord.http.Route.BASE.startswith("http://127.0.0.1:"):
        sys.exit(3)  # never talk to the real Discord

    class Client(discord.Client):
        async def on_ready(self):
            print("READY", self.user.name, len(self.guilds), flush=True)
            await self.close()

    client = Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    client.run(os.environ["DISCORD_TOKEN"], log_handler=None)
    """
)


async def test_separate_bot_process_connects_through_sitecustomize(fake: FakeDiscord, tmp_path: Path) -> None:
    script = tmp_path / "bot.py"
    script.write_text(BOT_SCRIPT)
    env = fake.subprocess_env(tmp_path / "site")
    env.pop("DISCORD_PROXY", None)
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert stdout.decode().split() == ["READY", "storyloom", "1"]
    assert fake.gateway.identify_count == 1
    assert time.monotonic() - started < 30
