// Decorator metadata for type-graphql and MikroORM, once per test worker.
import 'reflect-metadata';
