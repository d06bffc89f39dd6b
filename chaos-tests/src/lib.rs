//! Jepsen-style fault testing of real `warrant` processes.
//!
//! A run starts three `warrant server` processes, each in a network namespace of its own, drives
//! workloads against them from several clients while a nemesis injects faults on a seeded
//! schedule, records every operation as a [`history`], and hands the history and the nodes' final
//! state to the [`checkers`]. See `chaos-tests/README.md` for the tiers and the last long run.

pub mod checkers;
pub mod history;
pub mod linearizable;
pub mod schedule;

pub mod clock;
pub mod disk;
pub mod net;

pub mod cluster;
pub mod nemesis;
pub mod observe;
pub mod run;
pub mod tiers;
pub mod workload;
