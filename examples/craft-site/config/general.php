<?php
/**
 * General configuration, in the shape of Craft's config/general.php:
 * a plain array, with the environment-specific values read from the
 * instance environment (slate passes it through; php-fpm keeps it with
 * clear_env = no).
 */

return [
    // Shown on every page. Set SITE_NAME in the instance environment.
    'siteName' => getenv('SITE_NAME') ?: 'Craft Site on slate',
    // Craft's convention: production unless told otherwise.
    'environment' => getenv('CRAFT_ENVIRONMENT') ?: 'production',
    'devMode' => getenv('CRAFT_DEV_MODE') === 'true',
    // Where the app may write (declared writable in slate.json).
    'storagePath' => dirname(__DIR__) . '/storage',
    'templatesPath' => dirname(__DIR__) . '/templates',
];
