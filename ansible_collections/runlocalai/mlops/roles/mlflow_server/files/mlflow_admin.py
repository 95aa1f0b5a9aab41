"""Store and user administration for the mlflow_server role.

Runs on the tracking host with the MLflow virtualenv's Python. Secrets come
from the environment or stdin, never from the command line.

usage: mlflow_admin.py revision | upgrade | init-auth DB_URI | users [--check] | sqlite-copy SRC DEST
  revision  print the alembic revision of the store in $MLFLOW_BACKEND_STORE_URI
            (empty when the store has no schema yet)
  upgrade   migrate that store to this MLflow's schema (what `mlflow db upgrade` does)
  init-auth create or migrate the basic-auth database DB_URI (as the server would at start)
  users     read {"db_uri": ..., "users": [{"username", "password", "is_admin"}]} on
            stdin; create missing users, rotate passwords and admin flags that differ;
            print {"changed": [...]}. With --check nothing is written.
  sqlite-copy
            copy the SQLite database SRC to DEST with SQLite's online backup API:
            consistent while the server keeps writing (a file copy is not)
"""

import json
import os
import sys


def store_uri():
    uri = os.environ.get("MLFLOW_BACKEND_STORE_URI", "")
    if not uri:
        sys.exit("mlflow_admin: MLFLOW_BACKEND_STORE_URI is not set")
    return uri


def revision():
    import sqlalchemy

    engine = sqlalchemy.create_engine(store_uri())
    with engine.connect() as conn:
        if not sqlalchemy.inspect(conn).has_table("alembic_version"):
            return ""
        return conn.execute(sqlalchemy.text("SELECT version_num FROM alembic_version")).scalar() or ""


def upgrade():
    from mlflow.store.db import utils

    engine = utils.create_sqlalchemy_engine_with_retry(store_uri())
    if utils._is_empty_database(engine):
        utils._initialize_tables(engine)
    else:
        utils._upgrade_db(engine)


def init_auth(db_uri):
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore().init_db(db_uri)


def users_unchanged(spec):
    """True when every user of spec exists with its password and admin flag.

    Read straight from a SQLite auth database: importing MLflow's store and running its
    migrations takes seconds, for what is nearly always no change. (The server migrates the
    auth database itself when it starts.)"""
    import sqlite3

    from werkzeug.security import check_password_hash

    prefix = "sqlite:///"
    path = spec["db_uri"][len(prefix):] if spec["db_uri"].startswith(prefix) else ""
    if not os.path.isfile(path):
        return False
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        for user in spec["users"]:
            row = db.execute("SELECT password_hash, is_admin FROM users WHERE username = ?",
                             (user["username"],)).fetchone()
            if (row is None or bool(row[1]) != bool(user.get("is_admin", False))
                    or not check_password_hash(row[0], user["password"])):
                return False
    except sqlite3.Error:
        return False
    finally:
        db.close()
    return True


def users(spec, check):
    if users_unchanged(spec):
        return {"changed": []}
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(spec["db_uri"])
    changed = []
    for user in spec["users"]:
        name, password, is_admin = user["username"], user["password"], bool(user.get("is_admin", False))
        if not store.has_user(name):
            changed.append(name + ": created")
            if not check:
                store.create_user(name, password, is_admin=is_admin)
            continue
        if not store.authenticate_user(name, password):
            changed.append(name + ": password rotated")
            if not check:
                store.update_user(name, password=password)
        if store.get_user(name).is_admin != is_admin:
            changed.append(name + ": is_admin set to " + str(is_admin))
            if not check:
                store.update_user(name, is_admin=is_admin)
    return {"changed": changed}


def sqlite_copy(source, dest):
    import sqlite3

    if not os.path.isfile(source):
        sys.exit("mlflow_admin: %s does not exist" % source)
    src = sqlite3.connect(source)
    dst = sqlite3.connect(dest)
    with dst:
        src.backup(dst)
    dst.close()
    src.close()


def main(argv):
    # Files made here (a new SQLite store, the auth database) get the service's own UMask.
    os.umask(0o027)
    command = argv[1] if len(argv) > 1 else ""
    if command == "revision":
        print(revision())
    elif command == "upgrade":
        upgrade()
        print(revision())
    elif command == "init-auth" and len(argv) == 3:
        init_auth(argv[2])
    elif command == "users":
        print(json.dumps(users(json.load(sys.stdin), "--check" in argv[2:])))
    elif command == "sqlite-copy" and len(argv) == 4:
        sqlite_copy(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
