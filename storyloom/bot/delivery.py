"""Posting finished jobs to Discord, exactly once as the user sees it, without one destination holding up another.

The loop follows the store's delivery protocol (``storyloom/queue/ops/delivery.py``) for every job the store
lists as ready (a story's pages come in page order):

1. ``begin_delivery`` records the intent and gives a nonce that stays the same on every retry;
2. after a crash or an error (``resumed``), messages already posted for the job are found in the channel (by
   nonce, by their exact text, or by the ``job N`` footer) and not posted again: every message of a delivery,
   the book after the last page included;
3. each message is posted with its own nonce derived from the job's (discord.py sends ``enforce_nonce`` with
   every nonce), so Discord itself drops a duplicate sent within a few minutes;
4. ``record_delivery`` marks it delivered with the message IDs.

Failures: discord.py already retries 429s and 5xx answers a few times. What still fails for a reason that can
pass (429, 5xx, the network) is postponed in the store with a delay that doubles up to a cap, and given up
after a number of tries. A refusal that will not pass (any other 4xx: an archived or locked thread, a missing
permission, a channel that is gone) ends that delivery at once. Both endings are recorded with their reason,
and the user is told where possible: in the channel the request came from, else by direct message. A 413
shrinks the picture and tries again; a deleted thread sends the results to the channel the request came from.

Each channel or thread is its own lane: lanes run side by side, the store lists at most a few jobs per
destination, a destination that just refused is not asked again for a while, and one that failed waits out
its back-off; so a failing or slow destination never holds up the others.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aiohttp
import discord

from storyloom.bot import results, texts
from storyloom.bot.attachments import FittedFile, fit_audio, fit_image
from storyloom.bot.buttons import frozen_view
from storyloom.errors import StoreError
from storyloom.queue.job import DeliveryIntent, DeliveryOutcome, Job

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

logger = logging.getLogger(__name__)

BATCH = 50  # jobs listed per round
PER_DESTINATION = 5  # of which at most this many for one channel or thread
MAX_LANES = 8  # destinations delivered to at the same time
REFUSAL_MEMORY = 60.0  # seconds a destination that refused for good is not asked again
NOTICE_WINDOW = 600.0  # one notice per user and destination in this many seconds
SHRINK_TRIES = 4
HISTORY_LIMIT = 100
UNKNOWN_CHANNEL = 10003
THREAD_ARCHIVED = 50083
TEMPORARY = (discord.RateLimited, aiohttp.ClientError, asyncio.TimeoutError, OSError)


@dataclass(frozen=True)
class RetryPolicy:
    """After a temporary failure: wait ``first_delay`` seconds, doubling up to ``max_delay``; give up after
    ``max_tries`` failures (about half an hour with the defaults)."""

    first_delay: float = 5.0
    max_delay: float = 600.0
    max_tries: int = 10


@dataclass(frozen=True)
class Refusal:
    """A destination that refused for good, remembered for a short while."""

    until: float
    reason: str
    why: str  # for the user


def part_nonce(nonce: str, index: int) -> str:
    """One nonce per message of a delivery (Discord nonces are at most 25 characters)."""
    return f"{nonce[:22]}:{index}"


def destination_of(job: Job) -> int:
    """The lane a job is delivered in: its thread, else its channel (a story's pages carry the story's thread)."""
    destination = job.thread_id or job.channel_id
    assert destination is not None  # only jobs with a channel are listed
    return destination


def is_temporary(error: BaseException) -> bool:
    """429, 5xx and network failures can pass; any other HTTP error is Discord's final word."""
    if isinstance(error, discord.HTTPException):
        return error.status == 429 or error.status >= 500
    return isinstance(error, TEMPORARY)


def describe(error: BaseException) -> str:
    """For the record: ``HTTP 400 (code 50083): Thread is archived``."""
    if isinstance(error, discord.HTTPException):
        text = " ".join(str(error.text or "").split())[:200]
        return f"HTTP {error.status} (code {error.code})" + (f": {text}" if text else "")
    if isinstance(error, discord.RateLimited):
        return f"rate limited for {error.retry_after:.0f} s"
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}".rstrip(": ")


def why_for_user(error: BaseException) -> str:
    if isinstance(error, discord.HTTPException):
        if error.code == THREAD_ARCHIVED:
            return "the thread is archived or locked"
        if error.status == 403:
            return "the bot is not allowed to post there"
        if error.status == 404:
            return "the channel or thread is gone"
        if error.status == 413:
            return "the files are larger than the upload limit there"
        return f"Discord refused the message ({error.status})"
    return "Discord could not be reached"


class DeliveryLoop:
    def __init__(self, bot: StoryloomBot, poll: float, clock=time.monotonic, policy: RetryPolicy | None = None) -> None:
        self._bot = bot
        self._poll = poll
        self._clock = clock
        self.policy = policy or RetryPolicy()
        self._lanes: dict[int, asyncio.Task[None]] = {}
        self._waiting_until: dict[int, float] = {}  # destination → when its back-off ends
        self._refused: dict[int, Refusal] = {}
        self._noticed: dict[tuple[int, int], float] = {}  # (user, destination) → when they were last told
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Finish the deliveries in hand, then return from ``run`` (never cancel one halfway through a store call)."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    await self.tick()
                except StoreError as exc:
                    logger.warning("delivery paused: %s", exc)
                except Exception:
                    logger.exception("delivery loop failed; retrying")
                try:
                    await asyncio.wait_for(self._wake.wait(), self._poll)
                except TimeoutError:
                    pass
        finally:
            await self.drain()

    async def drain(self) -> None:
        """Wait for the lanes under way."""
        while self._lanes:
            await asyncio.gather(*self._lanes.values(), return_exceptions=True)

    async def tick(self) -> int:
        """Start a lane for each destination with jobs ready and none under way; returns how many started."""
        now = self._clock()
        self._forget_before(now)
        queues: dict[int, list[Job]] = {}
        shards = self._bot.config.bot
        ready = await self._bot.store.list_undelivered(
            BATCH, per_destination=PER_DESTINATION, shard_count=shards.shard_count, shards=shards.shards
        )
        for job in ready:
            destination = destination_of(job)
            if destination in self._lanes or self._waiting_until.get(destination, 0.0) > now:
                continue
            queues.setdefault(destination, []).append(job)
        started = 0
        for destination, jobs in queues.items():
            if len(self._lanes) >= MAX_LANES:
                break
            lane = asyncio.create_task(self._lane(destination, jobs), name=f"storyloom-delivery-{destination}")
            self._lanes[destination] = lane
            lane.add_done_callback(functools.partial(self._lane_done, destination))
            started += 1
        return started

    def _forget_before(self, now: float) -> None:
        """Drop back-offs, refusals and notices that no longer matter, so a long-running bot keeps no history."""
        self._waiting_until = {d: until for d, until in self._waiting_until.items() if until > now}
        self._refused = {d: refusal for d, refusal in self._refused.items() if refusal.until > now}
        self._noticed = {key: at for key, at in self._noticed.items() if now - at < NOTICE_WINDOW}

    def _lane_done(self, destination: int, _: asyncio.Task[None]) -> None:
        self._lanes.pop(destination, None)
        self._wake.set()  # more may be ready: the next page of a story, or jobs this lane left

    async def _lane(self, destination: int, jobs: list[Job]) -> None:
        """One destination's jobs, in order; stops at a temporary failure (the rest would fail the same way)."""
        for job in jobs:
            if self._stop.is_set():
                return
            try:
                delivered = await self.deliver(job)
            except StoreError as exc:
                logger.warning("delivery of job %s paused: %s", job.id, exc)
                return
            except Exception:
                logger.exception("delivery of job %s failed", job.id)
                return
            if not delivered and self._waiting_until.get(destination, 0.0) > self._clock():
                return

    async def deliver(self, job: Job) -> bool:
        """Post one job's results; True when it was delivered now, False when it was not (already delivered,
        postponed, or ended without its results)."""
        store = self._bot.store
        intent = await store.begin_delivery(job.id)
        if intent is None:
            return False
        destination = destination_of(job)
        outcome: results.Outcome | None = None
        try:
            refusal = self._refusal(destination)
            if refusal is not None:
                reason = f"{refusal.reason}, moments before for another job; not asked again"
                await self._end(job, destination, DeliveryOutcome.REFUSED, reason, refusal.why, None)
                return False
            outcome = await results.prepare(self._bot, job)
            ids = await self._post_outcome(job, intent, outcome)
        except StoreError:
            raise
        except Exception as exc:
            if isinstance(exc, discord.HTTPException) and not is_temporary(exc):
                reason = describe(exc)
                why = why_for_user(exc)
                logger.warning("results of job %s refused by Discord (%s); not trying again", job.id, reason)
                failed_at = outcome.target if outcome is not None else destination
                self._refused[failed_at] = Refusal(self._clock() + REFUSAL_MEMORY, reason, why)
                await self._end(job, failed_at, DeliveryOutcome.REFUSED, reason, why, outcome)
                return False
            if not is_temporary(exc):
                logger.exception("could not deliver the results of job %s", job.id)
            await self._postpone(job, destination, exc, outcome)
            return False
        await store.record_delivery(job.id, ids)
        self._waiting_until.pop(destination, None)
        logger.info("delivered job %s (%s) as %d message(s)", job.id, job.status, len(ids))
        if outcome.status and outcome.status_at:
            channel_id, message_id = outcome.status_at
            if outcome.status_final:
                self._bot.board.finish(channel_id, message_id, outcome.status)
            else:
                await self._bot.board.progress(channel_id, message_id, outcome.status)
        return True

    def _refusal(self, destination: int) -> Refusal | None:
        refusal = self._refused.get(destination)
        if refusal is not None and refusal.until <= self._clock():
            del self._refused[destination]
            return None
        return refusal

    async def _postpone(
        self, job: Job, destination: int, error: BaseException, outcome: results.Outcome | None
    ) -> None:
        """Try again after the back-off (the whole destination waits too), or give up after the policy's tries."""
        policy = self.policy
        retry_after = float(getattr(error, "retry_after", 0.0) or 0.0)
        reason = describe(error)
        record = await self._bot.store.postpone_delivery(
            job.id, reason, first_delay=policy.first_delay, max_delay=policy.max_delay, not_before=retry_after
        )
        if record.failures >= policy.max_tries:
            logger.error("gave up delivering job %s after %d tries: %s", job.id, record.failures, reason)
            why = why_for_user(error) if is_temporary(error) else "something went wrong on our side"
            reason = f"gave up after {record.failures} tries; the last failure: {reason}"
            await self._end(job, destination, DeliveryOutcome.GAVE_UP, reason, why, outcome)
            return
        delay = (record.next_try_at or 0.0) - self._bot.store.clock()
        self._waiting_until[destination] = self._clock() + max(0.0, delay)
        logger.warning("delivery of job %s failed (%s); trying again in %.1f s", job.id, reason, delay)

    async def _end(
        self,
        job: Job,
        destination: int,
        outcome: DeliveryOutcome,
        reason: str,
        why: str,
        prepared: results.Outcome | None,
    ) -> None:
        """End the delivery without its results: tell the user where possible (once per destination in a
        while), record how it ended and where they were told, and say so on the status message."""
        told = await self._notify(job, destination, why, include_target=outcome is DeliveryOutcome.GAVE_UP)
        if told is None:
            reason += "; the user was not told (already told about this place, or nowhere to tell them)"
            ids: list[int] = []
        else:
            place, message_id = told
            reason += f"; the user was told {place}"
            ids = [message_id]
        await self._bot.store.end_delivery(job.id, outcome, reason, ids)
        status_at = prepared.status_at if prepared is not None else None
        if status_at is not None:
            line = texts.fit(f"⚠️ {texts.headline(job)} — finished, but {why}\n{texts.job_footer(job.id)}")
            self._bot.board.finish(status_at[0], status_at[1], line)

    async def _notify(self, job: Job, destination: int, why: str, *, include_target: bool) -> tuple[str, int] | None:
        """A short notice where the user will see it: the destination itself (after a failure that may have
        passed), the channel the request came from, else a direct message. None when not sent."""
        key = (job.user_id, destination)
        last = self._noticed.get(key)
        if last is not None and self._clock() - last < NOTICE_WINDOW:
            return None
        where = f" in <#{destination}>" if job.guild_id is not None else ""
        text = texts.fit(
            f"⚠️ <@{job.user_id}> the results of job {job.id} could not be posted{where}: {why}.\n"
            f"{texts.job_footer(job.id, 'not delivered')}"
        )
        mentions = discord.AllowedMentions(everyone=False, roles=False, users=[discord.Object(job.user_id)])
        places: list[tuple[str, int | None]] = []
        if include_target:
            places.append((f"in channel {destination}", destination))
        if job.channel_id is not None and job.channel_id != destination:
            places.append((f"in channel {job.channel_id}", job.channel_id))
        places.append(("by direct message", None))
        for place, channel_id in places:
            try:
                if channel_id is None:
                    channel: discord.abc.Messageable = await self._bot.create_dm(discord.Object(job.user_id))
                else:
                    channel = self._bot.get_partial_messageable(channel_id, guild_id=job.guild_id)
                message = await channel.send(text, allowed_mentions=mentions)
            except discord.HTTPException as exc:
                logger.info("could not tell user %s about job %s %s (%s)", job.user_id, job.id, place, exc.status)
                continue
            self._noticed[key] = self._clock()
            return place, message.id
        return None

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
        found = await self._already_posted(channel, job, intent, outcome.posts) if intent.resumed else {}
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
        self, channel: discord.PartialMessageable, job: Job, intent: DeliveryIntent, posts: list[results.Post]
    ) -> dict[int, int]:
        """Messages an earlier try of this delivery already posted: part index → message ID.

        Each part is recognised by its nonce, else by its text (every part's text is made afresh from the store
        the same way, so this finds the book after a story's last page too, whose footer names the story), else
        by the ``job N`` footer of this job, in order."""
        nonces = {part_nonce(intent.nonce, index): index for index in range(len(posts))}
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
                    continue
                same = [i for i, post in enumerate(posts) if i not in found and _same_text(message.content, post)]
                if same:
                    found[same[0]] = message.id
                elif footer.search(message.content):
                    by_footer.append(message.id)
        except discord.Forbidden:  # no Read Message History here: rely on Discord dropping repeated nonces
            logger.info("job %s: cannot read channel %s to check for an earlier post", job.id, channel.id)
            return {}
        for index, post in enumerate(posts):  # Discord does not always return nonces, and a text may have changed
            if index not in found and by_footer and footer.search(post.content):
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


def _same_text(content: str, post: results.Post) -> bool:
    """Whether a message is this post: the same text, or the same text with a note about a re-encoded file."""
    return content == post.content or content.startswith(post.content + "\n-# ")


async def _fit(post: results.Post, limit: int) -> FittedFile:
    if not post.data:
        return FittedFile(b"", post.filename)
    if len(post.data) <= limit:
        return FittedFile(post.data, post.filename)
    if not post.shrinkable:
        return FittedFile(b"", post.filename, f"{post.filename} is larger than this channel's upload limit")
    fit = fit_audio if post.filename.endswith(".ogg") else fit_image  # narration, or a picture
    return await asyncio.to_thread(fit, post.data, post.filename, limit)
