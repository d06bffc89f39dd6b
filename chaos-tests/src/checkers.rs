//! The checkers that judge a run's history.
