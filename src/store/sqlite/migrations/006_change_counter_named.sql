-- The change counter's table and column get the name the code and the docs use for them
-- (`store::change_counter`): `generation.n` becomes `change_counter.value`. SQLite rewrites the
-- triggers of migrations 003 and 004 that move it.
ALTER TABLE generation RENAME TO change_counter;
ALTER TABLE change_counter RENAME COLUMN n TO value;
