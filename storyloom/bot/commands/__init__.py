"""One extension per slash command; each module's ``setup(bot)`` adds its cog."""
