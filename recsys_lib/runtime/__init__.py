"""The runtime: the Spark session, MLflow tracking, logging and what the Airflow DAG
needs at task run time.
"""
