// A configuration value that is missing or invalid: the process (front) or isolate (edge) cannot
// start with it. Entry points report it as a configuration problem, not a crash.
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
