-- Runs once, when the PostgreSQL volume is new: one database per consumer, all owned by the
-- recsys role that the postgres image creates from POSTGRES_USER.
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE serving;
