"""Job handlers, one module per family: ``images`` (imagine, vary, upscale), ``stories`` (story, story_page),
``training`` (train_story, train_subject); ``characters`` loads a registered character's LoRA for one job.

Each handler is a thin adapter between a queued job and a model pipeline: typed parameters in, artifacts
out. All the work (and all the validation of values that depend on the model) is the pipeline's.
"""
