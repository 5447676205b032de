"""lull: turns bursts of chat messages from Meta's webhooks into one turn for a chatbot.

The code lives in the repository's top-level folders (common, ingest, processor, sender,
ops, dev); this package holds links to them, so that every installed import name is
namespaced: `lull.common`, `lull.processor`, … (README, "Contributing"). Beside the links,
lull/cli.py is the `lull` command, which dispatches to all of them and belongs to none.
"""
