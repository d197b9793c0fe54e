"""A witness of the log (c2sp.org/tlog-witness): its server and the log's client of it."""
