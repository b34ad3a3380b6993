"""RQ job functions, run by `worker.py`.

The contract every job here keeps:

- It is a plain module-level function, enqueued by its import path.
- It takes ids and plain values, never model objects, and reloads what it needs
  from the database: the row is the truth, not what was true when it was enqueued.
- It is idempotent: running it twice changes nothing more than running it once,
  because RQ may run a job again after a worker is killed or Redis is flushed.
- It runs inside an application context pushed by the worker, so `db.session`,
  `current_app.config` and `crm.queues.redis_connection()` work as in a request.
"""
