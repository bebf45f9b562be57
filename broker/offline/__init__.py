"""Offline tooling: archives, replay, dataset building, demo, report, generate, evaluate-stream and the
local development broker. The online plugin (`varstream run`) never imports this package."""
