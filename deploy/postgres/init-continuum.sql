-- Run once by the postgres image on a new volume: Continuum's own database and owner, beside Temporal's.
-- The owner runs migrations; the application switches to the continuum_app role they create.
CREATE ROLE continuum LOGIN CREATEROLE PASSWORD 'continuum';  -- change with ALTER ROLE in production
CREATE DATABASE continuum OWNER continuum;
-- The role the worker and the API log in as: it owns nothing; the migrations grant it INSERT and SELECT on
-- the log and what the projection needs. The owner may grant it (the migrations do).
CREATE ROLE continuum_app LOGIN PASSWORD 'continuum_app';  -- change with ALTER ROLE in production
GRANT continuum_app TO continuum WITH ADMIN OPTION;
