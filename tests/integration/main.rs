//! hookgate's integration tests, in one binary. Every test drives a real interface: the built
//! `hookgate` binary, or plugin libraries loaded from disk.
//!
//! * `plugin_loading`: the example plugins and the broken fixtures, loaded and called in-process;
//! * `cli`: `hookgate check` as a user runs it.

mod cli;
mod plugin_loading;
