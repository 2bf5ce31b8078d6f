"""/imagine reads Midjourney's flags and {a, b} permutations from the prompt (fake Discord, stand-in worker)."""

from __future__ import annotations

from pathlib import Path

from storyloom.queue.job import JobStatus
from tests.support.bot import bot_config, job_of, running_bot
from tests.support.fakediscord import FakeDiscord


async def test_flags_and_permutations_make_one_job_each(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        handle = await fake.invoke_command(
            "imagine", {"prompt": "a {red, blue} bird --ar 16:9 --no fog --chaos 10 --stylize 0 --tile --seed 9"}
        )
        first = await handle.wait_original()  # the first job's status fills the "thinking…" placeholder
        second = (await handle.wait_followups(2))[1]
        red, blue = [await store.get(job_of(message)) for message in (first, second)]
        assert (red.params["prompt"], blue.params["prompt"]) == ("a red bird", "a blue bird")
        for job in (red, blue):
            assert {key: job.params[key] for key in ("aspect_ratio", "negative_prompt", "chaos", "tile", "seed")} == {
                "aspect_ratio": "16:9",
                "negative_prompt": "fog",
                "chaos": 10,
                "tile": True,
                "seed": 9,
            }
            assert job.params["guidance_scale"] == 10.5  # --stylize 0: half again the configured 7
        assert "a blue bird" in second.content


async def test_repeat_queues_copies_and_the_negative_option_joins_no(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        handle = await fake.invoke_command("imagine", {"prompt": "a fox --repeat 3 --no cars", "negative": "fog"})
        await handle.wait_followups(3)
        jobs = await store.list_jobs(tuple(JobStatus))
        assert [(job.params["prompt"], job.params["negative_prompt"]) for job in jobs] == [("a fox", "fog, cars")] * 3


async def test_flag_problems_and_the_cap_are_private_and_queue_nothing(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):  # at most 5 waiting per user
        cases = [
            ({"prompt": "a cat --weird 2"}, "known flags are --ar, --chaos, --no, --repeat, --seed, --stylize, --tile"),
            ({"prompt": "a cat --chaos 500"}, "--chaos needs a whole number from 0 to 100"),
            ({"prompt": "a cat --seed 4", "seed": 5}, "given twice"),
            ({"prompt": "a {cat, dog --repeat 2"}, "never closed"),
            ({"prompt": "a cat --repeat 6"}, "6 jobs"),
        ]
        for options, expected in cases:
            handle = await fake.invoke_command("imagine", options)
            await handle.wait_ack()
            reply = handle.original_response()
            assert reply.ephemeral and expected in reply.content, (options, reply.content)
        assert await store.list_jobs(tuple(JobStatus)) == []

        three = await fake.invoke_command("imagine", {"prompt": "a boat --repeat 3"})
        await three.wait_followups(3)
        full = await fake.invoke_command("imagine", {"prompt": "a {car, bus, van}"})
        await full.wait_ack()
        reply = full.original_response()
        assert reply.ephemeral and "you have 3 waiting; the limit is 5" in reply.content
        assert len(await store.list_jobs(tuple(JobStatus))) == 3


def with_named_models(config):
    names = {
        "checkpoints": {"dreamy": "/models/dreamy", "inky": "/models/inky"},
        "loras": {"ink": "/l/ink.safetensors"},
    }
    return config.model_copy(update={"models": config.models.model_copy(update=names)})


async def test_model_option_and_loras_are_checked_by_name(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(with_named_models(bot_config(tmp_path)), store, fake):
        handle = await fake.invoke_command("imagine", {"prompt": "a fox <lora:ink:0.6>", "model": "dreamy"})
        job = await store.get(job_of(await handle.wait_original()))
        assert (job.params["model"], job.params["prompt"]) == ("dreamy", "a fox <lora:ink:0.6>")
        for options, expected in [
            ({"prompt": "a fox", "model": "sketchy"}, "unknown model 'sketchy'; the known models: dreamy, inky"),
            ({"prompt": "a fox <lora:paint>"}, "unknown LoRA 'paint' in prompt; the known LoRAs: ink"),
            ({"prompt": "a fox", "negative": "<lora:ink>"}, "LoRAs go in the prompt"),
        ]:
            refused = await fake.invoke_command("imagine", options)
            await refused.wait_ack()
            reply = refused.original_response()
            assert reply.ephemeral and expected in reply.content, (options, reply.content)
        assert len(await store.list_jobs(tuple(JobStatus))) == 1


async def test_model_autocomplete_offers_the_configured_checkpoints(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from storyloom.bot.commands.imagine import model_names

    interaction = SimpleNamespace(client=SimpleNamespace(config=with_named_models(bot_config(tmp_path))))
    assert [choice.value for choice in await model_names(interaction, "")] == ["dreamy", "inky"]  # type: ignore[arg-type]
    assert [choice.value for choice in await model_names(interaction, "INK")] == ["inky"]  # type: ignore[arg-type]
