"""``draw_page``: the one way a story page is drawn, by the CLI (``StoryPipeline.illustrate_page``) and by the
worker's page jobs alike."""

from __future__ import annotations

from storyloom.domain.story.plan import PagePlan
from storyloom.models.story.pipeline import draw_page
from storyloom.models.story.testing import FakeTxt2Img
from tests.support.stories import make_pipeline


def test_a_page_drawn_alone_is_the_page_the_pipeline_draws(tiny_config) -> None:
    pipeline, _, images = make_pipeline(tiny_config)
    plan = pipeline.write("Bhna the cat meets a kind dragon.", pages=2, seed=3)
    through_pipeline = pipeline.illustrate_page(plan, 1)
    page = plan.pages[1]
    # What a worker page job knows of the page: its parameters, not the plan.
    alone = PagePlan(
        number=page.number, chapter=page.chapter, text=page.text, scene=page.scene,
        prompt=page.prompt, negative_prompt=page.negative_prompt, seed=page.seed,
    )  # fmt: skip
    drawn = draw_page(FakeTxt2Img(), alone)
    assert drawn.image.tobytes() == through_pipeline.image.tobytes()
    assert (drawn.seed, drawn.parameters, drawn.nsfw) == (
        through_pipeline.seed, through_pipeline.parameters, through_pipeline.nsfw,
    )  # fmt: skip
    assert images.calls == [(page.prompt, page.negative_prompt, page.seed)]


def test_a_redraw_uses_the_given_seed(tiny_config) -> None:
    pipeline, _, _ = make_pipeline(tiny_config)
    plan = pipeline.write("Bhna the cat meets a kind dragon.", pages=1, seed=3)
    images = FakeTxt2Img()
    drawn = draw_page(images, plan.pages[0], 777, safety_checker=False)
    assert drawn.seed == 777 and images.calls == [(plan.pages[0].prompt, plan.pages[0].negative_prompt, 777)]
