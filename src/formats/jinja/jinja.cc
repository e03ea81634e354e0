// The chat-template interpreter lands here (work in progress).
