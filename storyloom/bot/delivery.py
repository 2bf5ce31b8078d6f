"""Posting finished jobs to Discord, exactly once as the user sees it.

The loop follows the store's delivery protocol (``storyloom/queue/ops/delivery.py``) for every job the store
lists as undelivered (a story's pages come in page order):

1. ``begin_delivery`` records the intent and gives a nonce that stays the same on every retry;
2. after a crash or an error (``resumed``), messages already posted for the job are found in the channel (by
   nonce, or by the ``job N`` footer every result carries) and not posted again;
3. each message is posted with its own nonce derived from the job's (discord.py sends ``enforce_nonce`` with
   every nonce), so Discord itself drops a duplicate sent within a few minutes;
4. ``record_delivery`` marks it delivered with the message IDs.

discord.py already retries 429s and 5xx answers; what still fails is retried later with a growing delay,
never by re-posting blindly. A 413 shrinks the picture and tries again. A deleted thread sends the results
to the channel the request came from; a channel the bot can no longer use is given up on, with a log line.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp
import discord

from storyloom.bot import results, texts
from storyloom.bot.attachments import FittedFile, fit_image
from storyloom.bot.buttons import frozen_view
from storyloom.errors import StoreError, StoryloomError
from storyloom.queue.job import DeliveryIntent, Job

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

logger = logging.getLogger(__name__)

BATCH = 50
MAX_FAILURES = 8  # a job whose results cannot even be prepared is given up after this many tries
MAX_DELAY = 60.0
SHRINK_TRIES = 4
HISTORY_LIMIT = 100
UNKNOWN_CHANNEL = 10003
TRANSIENT = (discord.HTTPException, aiohttp.ClientError, asyncio.TimeoutError, OSError, StoreError)


def part_nonce(nonce: str, index: int) -> str:
    """One nonce per message of a delivery (Discord nonces are at most 25 characters)."""
    return f"{nonce[:22]}:{index}"


class DeliveryLoop:
    def __init__(self, bot: StoryloomBot, poll: float, clock=time.monotonic) -> None:
        self._bot = bot
        self._poll = poll
        self._clock = clock
        self._failures: dict[int, int] = {}
        self._retry_at: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Finish the delivery in hand, then return from ``run`` (never cancel it halfway through a store call)."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            delivered = 0
            try:
                delivered = await self.tick()
            except StoryloomError as exc:
                logger.warning("delivery paused: %s", exc)
            except Exception:
                logger.exception("delivery loop failed; retrying")
            if delivered:
                continue  # more may have become deliverable (the next page of a story)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll)
            except TimeoutError:
                pass

    async def tick(self) -> int:
        """Deliver what is ready; returns how many jobs were delivered."""
        now = self._clock()
        count = 0
        for job in await self._bot.store.list_undelivered(BATCH):
            if self._stop.is_set():
                break
            if self._retry_at.get(job.id, 0.0) > now:
                continue
            if await self.deliver(job):
                count += 1
        return count

    async def deliver(self, job: Job) -> bool:
        store = self._bot.store
        intent = await store.begin_delivery(job.id)
        if intent is None:
            return False
        try:
            outcome = await results.prepare(self._bot, job)
            ids = await self._post_outcome(job, intent, outcome)
        except discord.NotFound as exc:
            logger.warning("results of job %s: the channel is gone (%s); giving up", job.id, exc.code)
            ids, outcome = [], None
        except discord.Forbidden as exc:
            logger.warning("results of job %s: no permission to post (%s); giving up", job.id, exc.code)
            ids, outcome = [], None
        except TRANSIENT as exc:
            self._later(job, f"{type(exc).__name__} {getattr(exc, 'status', '')}".strip(), give_up=False)
            return False
        except Exception:
            logger.exception("could not deliver the results of job %s", job.id)
            if not self._later(job, "error", give_up=True):
                return False
            ids, outcome = await self._apologize(job), None
        await store.record_delivery(job.id, ids)
        self._failures.pop(job.id, None)
        self._retry_at.pop(job.id, None)
        logger.info("delivered job %s (%s) as %d message(s)", job.id, job.status, len(ids))
        if outcome is not None and outcome.status and outcome.status_at:
            channel_id, message_id = outcome.status_at
            if outcome.status_final:
                self._bot.board.finish(channel_id, message_id, outcome.status)
            else:
                await self._bot.board.progress(channel_id, message_id, outcome.status)
        return True

    async def _apologize(self, job: Job) -> list[int]:
        """After giving up: one line where the results should have been, so the user is not left waiting."""
        target = job.thread_id or job.channel_id
        if target is None:
            return []
        text = f"⚠️ <@{job.user_id}> the results of job {job.id} could not be posted; it has been logged\n{texts.job_footer(job.id)}"
        try:
            channel = self._bot.get_partial_messageable(target, guild_id=job.guild_id)
            message = await channel.send(
                text, allowed_mentions=discord.AllowedMentions(users=[discord.Object(job.user_id)])
            )
        except discord.HTTPException:
            return []
        return [message.id]

    def _later(self, job: Job, why: str, *, give_up: bool) -> bool:
        """Schedule another try; True when the job should be given up on instead."""
        failures = self._failures[job.id] = self._failures.get(job.id, 0) + 1
        if give_up and failures >= MAX_FAILURES:
            logger.error("giving up on delivering job %s after %d tries", job.id, failures)
            return True
        delay = min(MAX_DELAY, 0.5 * 2 ** (failures - 1))
        self._retry_at[job.id] = self._clock() + delay
        logger.warning("delivery of job %s failed (%s); retrying in %.1f s", job.id, why, delay)
        return False

    async def _post_outcome(self, job: Job, intent: DeliveryIntent, outcome: results.Outcome) -> list[int]:
        if outcome.rename_thread:
            await self._rename(outcome.target, outcome.rename_thread)
        try:
            return await self._post_all(job, intent, outcome)
        except discord.NotFound as exc:
            if exc.code != UNKNOWN_CHANNEL or job.channel_id is None or outcome.target == job.channel_id:
                raise
            logger.info("thread %s of job %s is gone; posting in channel %s", outcome.target, job.id, job.channel_id)
            return await self._post_all(job, intent, replace(outcome, target=job.channel_id))

    async def _post_all(self, job: Job, intent: DeliveryIntent, outcome: results.Outcome) -> list[int]:
        channel = self._bot.get_partial_messageable(outcome.target, guild_id=job.guild_id)
        found = await self._already_posted(channel, job, intent, len(outcome.posts)) if intent.resumed else {}
        ids = []
        for index, post in enumerate(outcome.posts):
            if index in found:
                ids.append(found[index])
                continue
            message = await self._send(channel, job, post, part_nonce(intent.nonce, index))
            ids.append(message.id)
        return ids

    async def _send(
        self, channel: discord.PartialMessageable, job: Job, post: results.Post, nonce: str
    ) -> discord.Message:
        limits = self._bot.limits
        guild = self._bot.get_guild(job.guild_id) if job.guild_id else None
        limit = limits.limit(job.guild_id, job.channel_id, guild.filesize_limit if guild else None)
        reference = None
        if post.reply_to is not None and job.channel_id == channel.id:
            reference = discord.MessageReference(
                message_id=post.reply_to, channel_id=channel.id, fail_if_not_exists=False
            )
        mentions = discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(job.user_id)])
        for attempt in range(SHRINK_TRIES):
            fitted = await _fit(post, limit)
            content = post.content if not fitted.note else texts.fit(f"{post.content}\n-# {fitted.note}")
            files = [discord.File(io.BytesIO(fitted.data), fitted.filename)] if fitted.data else []
            try:
                # discord.py's send overloads leave out the None its implementation accepts for these two.
                return await channel.send(
                    content, files=files, view=frozen_view(post.items), nonce=nonce,  # type: ignore[arg-type]
                    allowed_mentions=mentions, reference=reference,  # type: ignore[arg-type]
                )  # fmt: skip
            except discord.HTTPException as exc:
                if exc.status != 413 or not fitted.data or attempt == SHRINK_TRIES - 1:
                    raise
                limit = limits.shrink(job.guild_id, job.channel_id, len(fitted.data))
                logger.info("upload of job %s refused as too large; trying %d bytes", job.id, limit)
        raise AssertionError("unreachable")

    async def _already_posted(
        self, channel: discord.PartialMessageable, job: Job, intent: DeliveryIntent, count: int
    ) -> dict[int, int]:
        """Messages an earlier try of this delivery already posted: part index → message ID."""
        nonces = {part_nonce(intent.nonce, index): index for index in range(count)}
        footer = re.compile(rf"^-# .*\bjob {job.id}$", re.MULTILINE)
        since = datetime.fromtimestamp(intent.started_at - 5, tz=UTC)
        found: dict[int, int] = {}
        by_footer: list[int] = []
        me = self._bot.user.id if self._bot.user else None
        try:
            async for message in channel.history(limit=HISTORY_LIMIT, after=since, oldest_first=True):
                if message.author.id != me or message.id == job.message_id:
                    continue
                if isinstance(message.nonce, str) and message.nonce in nonces:
                    found[nonces[message.nonce]] = message.id
                elif footer.search(message.content):
                    by_footer.append(message.id)
        except discord.Forbidden:  # no Read Message History here: rely on Discord dropping repeated nonces
            logger.info("job %s: cannot read channel %s to check for an earlier post", job.id, channel.id)
            return {}
        for index in range(count):  # Discord does not always return nonces: fall back to the footer, in order
            if index not in found and by_footer:
                found[index] = by_footer.pop(0)
        if found:
            logger.info("job %s: %d message(s) were already posted before a restart or error", job.id, len(found))
        return found

    async def _rename(self, thread_id: int, name: str) -> None:
        try:
            thread = self._bot.get_channel(thread_id) or await self._bot.fetch_channel(thread_id)
            if isinstance(thread, discord.Thread) and thread.name != name:
                await thread.edit(name=name)
        except discord.HTTPException as exc:
            logger.info("could not rename thread %s (%s)", thread_id, exc.status)


async def _fit(post: results.Post, limit: int) -> FittedFile:
    if not post.data:
        return FittedFile(b"", post.filename)
    if len(post.data) <= limit:
        return FittedFile(post.data, post.filename)
    if not post.shrinkable:
        return FittedFile(b"", post.filename, f"{post.filename} is larger than this channel's upload limit")
    return await asyncio.to_thread(fit_image, post.data, post.filename, limit)
