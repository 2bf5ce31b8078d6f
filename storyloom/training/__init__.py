"""Training: a story LoRA from summary/story pairs (``story_lora``) and DreamBooth LoRA characters
(``subject_lora``), resumable from checkpoints, plus the characters registry service (``characters``).

Importing this package loads nothing heavy: ``characters``, ``paths`` and ``uploads`` are torch-free, so the
bot can use them; the trainers import torch, diffusers and peft only when they run.
"""
