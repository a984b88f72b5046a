//! Checks the numbered invariants of the domain rules on stored state.
