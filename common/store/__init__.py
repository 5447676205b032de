"""lull's Redis schema: every key, every Lua script and every byte layout, behind methods
named for what they do. Services hold the policy (when to close a window, when to retry,
what to send) and ask the store; nothing outside this folder builds a key other than a
stream's name, calls a script or parses a value Redis holds about a conversation
(tests/test_architecture.py).

What lull keeps about a conversation, and for how long: keys.py (its module docstring).

- keys.py: every key and consumer group name (what each holds, who writes it, how long).
- scripts.py: how a script is read, loaded and called; lua/: every script, with the
  preludes they share (clock.lua: clock_ms; conversation_life.lua: a conversation's state
  and its lives; window_layout.lua: the window's bytes; window_emit.lua: a window becomes
  a batch; legacy.lua: the 0.1 upgrade).
- windows.py: open, apply, close and flush a window; window_reads.py: a window's header
  and the scan of open windows, for operators.
- deliveries.py: a batch's delivery: its send state, the ownership check, the finish that
  marks it delivered (lua/deliver_check.lua, lua/deliver_mark.lua); dead marks.
- sent.py: remember a sent message id; the in-flight mark.
- turns.py: echoes looked up, a human's message in the history.
- failures.py: a failed delivery recorded once, and the recent ones read back.
- pauses.py: a conversation's pause (lua/pause.lua).
- outcomes.py: a conversation's last finished batches.
- transcripts.py: a voice note's transcript, kept so it is made once (sender/media/).
- conversations.py: everything about one conversation, read in one round trip.
- rate_limits.py: the limiters' GCRA step (lua/rate_limit.lua) and their names.
- streams.py: stream and group housekeeping (lua/stream_trim.lua, consumer_expire.lua).
- legacy.py: the upgrade from 0.1 (with lua/legacy.lua): delete both when 0.1 is no
  longer supported.
"""
