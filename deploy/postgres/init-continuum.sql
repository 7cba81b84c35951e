-- Run once by the postgres image on a new volume: Continuum's own database and owner, beside Temporal's.
-- The owner runs migrations; the application switches to the continuum_app role they create.
CREATE ROLE continuum LOGIN CREATEROLE PASSWORD 'continuum';  -- change with ALTER ROLE in production
CREATE DATABASE continuum OWNER continuum;
