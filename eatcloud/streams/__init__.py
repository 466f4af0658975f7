"""Records (commands, replies, events), their codec, and the topic declarations."""
