"""The queue room: the durable directory of queued job specs and its JSON API."""
