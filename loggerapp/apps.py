from django.apps import AppConfig


class LoggerappConfig(AppConfig):
    name = "loggerapp"
    verbose_name = "ISEIF Rainforest Logger"
