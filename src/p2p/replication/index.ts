/** Replication, as the rest of the code uses it (split into one file per role next). */
export * from './replication.js';
