"""The Discord bot: slash commands, restart-proof buttons, live progress and delivery of finished jobs.

The bot talks to workers only through the job store and never imports torch, so it stays small and its
event loop stays free. See ``app.StoryloomBot`` for how the pieces are put together.
"""
