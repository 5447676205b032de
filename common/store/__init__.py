"""lull's Redis schema: every key, every Lua script and every byte layout, behind methods
named for what they do. Services hold the policy (when to close a window, when to retry,
what to send) and ask the store; nothing outside this folder builds a key, calls a script
or parses a value Redis holds (tests/test_architecture.py).

- keys.py: every key and consumer group name (what each holds, who writes it).
- scripts.py: how a script is read, loaded and called; lua/: the scripts.
- conversations.py: what lull holds about one conversation, read in one place.
- pauses.py: a conversation's pause (lua/pause.lua).
- outcomes.py: a conversation's last finished batches.
- streams.py: stream and group housekeeping (lua/stream_trim.lua, lua/consumer_expire.lua).
"""
