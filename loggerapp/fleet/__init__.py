"""Several pingers sharing one study without a fixed split (issue 13): membership in the database, ownership by
rendezvous hashing, exact hand-overs. See docs/fleet.md."""
