//! Codec configuration parsers: what the sequence headers of a stream say about its media.
