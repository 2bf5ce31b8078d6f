"""Job handlers, one module per family: ``images`` (imagine, vary, upscale), ``stories`` (story, story_page).

Each handler is a thin adapter between a queued job and a model pipeline: typed parameters in, artifacts
out. All the work (and all the validation of values that depend on the model) is the pipeline's.
"""
