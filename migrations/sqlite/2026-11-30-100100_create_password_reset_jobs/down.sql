DROP TABLE password_reset_jobs;
