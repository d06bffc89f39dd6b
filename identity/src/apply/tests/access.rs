//! Access decisions: Authorize decided at its position, budgets, node-only records.
