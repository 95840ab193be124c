package storage

// SetAuditLimit lets tests use a small audit log.
func SetAuditLimit(db *DB, n int) { db.auditLimit = n }
func SetAuditBytes(db *DB, n int) { db.auditBytes = n }
