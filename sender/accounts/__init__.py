"""Each account's sender settings, bot, token and sends (the accounts file)."""
