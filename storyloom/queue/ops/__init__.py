"""Store operations as driver-independent generators (see ``storyloom.queue.operation``).

``setup``: pragmas and migrations; ``jobs``: what the bot and the CLI do; ``work``: what workers do;
``delivery``: the bot's exactly-once delivery records; ``settings``: users' saved defaults.
"""
