"""Rules over the state service: a Rete network whose actions are Commands and Events."""
