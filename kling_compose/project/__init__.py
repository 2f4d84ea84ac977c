"""A project's on-disk state, synchronous: the ledger (`state`), the content-addressed store
(`store`), `storyboard.lock` (`lockfile`), results rebuilt from it (`restore`), what a result
hands on (`reuse`), the one decision of what each task needs (`decide`) and the last run's
record (`runs`)."""
