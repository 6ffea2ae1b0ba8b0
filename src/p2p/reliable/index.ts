export * from './reliable-delivery.js';
