//! HTTP service (in progress).
